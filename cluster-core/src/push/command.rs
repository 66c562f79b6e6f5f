//! `CommandPush`: runs a configured program per action.
