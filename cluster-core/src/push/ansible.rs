//! `AnsiblePush`: configuration push with ansible-playbook.
