//! The `Discovery` trait: where nodes come from (Serf in production).

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::error::Result;
use crate::event::MembershipEvent;
use crate::node::Member;

/// An endless stream of membership events. Implementations reconnect on their own and,
/// after a reconnect, replay the current member list as events so nothing is missed;
/// the manager ignores events that change nothing, so replays never duplicate records.
pub type MembershipStream = BoxStream<'static, MembershipEvent>;

/// A source of node membership.
#[async_trait]
pub trait Discovery: Send + Sync + std::fmt::Debug {
    /// Registry name of the implementation (`serf`, ...).
    fn name(&self) -> &str;

    /// The current members, alive or not.
    async fn members(&self) -> Result<Vec<Member>>;

    /// Membership changes from now on.
    async fn subscribe(&self) -> Result<MembershipStream>;

    /// Prepares hosts given by address for discovery and returns the vars the
    /// discover playbook needs (agent join address, tags, ...). The manager runs that
    /// playbook through its `ConfigPush`, so the job, its log and its outcome are
    /// recorded like any other job.
    async fn enroll(&self, addrs: &[String], vars: &serde_json::Value)
    -> Result<serde_json::Value>;
}
