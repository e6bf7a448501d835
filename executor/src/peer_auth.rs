//! Who may connect on which socket, claim which tenants, and approve with
//! which roles — decided from the kernel-reported peer uid (SO_PEERCRED),
//! never from anything a peer says.
//!
//! Without an `airlock` section a single-user laptop just works: only the
//! executor's own uid may connect on either socket; it may claim the tenant
//! of the executor's own trusted context (any tenant, with a warning, when
//! none is set) and holds every approval role.

use airlock_ipc::Role;
use airlock_policy::config::{Config, NameSet, PeerId, ValueSource};

/// The approver role that lets a user other than the executor's own prune
/// the ledger (`airlock ledger prune`).
pub const LEDGER_ADMIN_ROLE: &str = "ledger_admin";

#[derive(Debug, thiserror::Error)]
pub enum PeerAuthError {
    #[error(
        "the config names OS user `{0}` under `airlock`, but no such user exists on this machine"
    )]
    UnknownUser(String),
}

/// The resolved authorization table.
#[derive(Debug, Clone)]
pub struct PeerPolicy {
    proposers: Vec<(u32, NameSet)>,
    approvers: Vec<(u32, NameSet)>,
    own_uid: u32,
    /// Start-up warnings (e.g. "the default proposer may claim any tenant").
    pub warnings: Vec<String>,
}

impl PeerPolicy {
    /// Build from the config. `env` reads the executor's environment;
    /// `user_uid` resolves a login name to a uid.
    pub fn from_config(
        cfg: &Config,
        own_uid: u32,
        env: impl Fn(&str) -> Option<String>,
        user_uid: impl Fn(&str) -> Option<u32>,
    ) -> Result<PeerPolicy, PeerAuthError> {
        let resolve = |peer: &PeerId| match peer {
            PeerId::Uid(uid) => Ok(*uid),
            PeerId::User(name) => {
                user_uid(name).ok_or_else(|| PeerAuthError::UnknownUser(name.clone()))
            }
        };
        let mut warnings = Vec::new();
        let proposers = match &cfg.airlock.proposers {
            Some(list) => list
                .iter()
                .map(|p| Ok((resolve(&p.peer)?, p.tenants.clone())))
                .collect::<Result<_, PeerAuthError>>()?,
            None => {
                let tenant = match &cfg.trusted_context.tenant {
                    ValueSource::Env(name) => env(name).filter(|v| !v.is_empty()),
                    ValueSource::Static(v) => Some(v.clone()),
                    ValueSource::Unset | ValueSource::Claim(_) => None,
                };
                let verified = matches!(cfg.trusted_context.tenant, ValueSource::Claim(_));
                let tenants = match tenant {
                    Some(t) => NameSet::Only(vec![t]),
                    // Every tenant is checked against its signed token
                    // (`Authority::check_identity`).
                    None if verified => NameSet::Any,
                    None => {
                        warnings.push(
                            "no `airlock.proposers` and no trusted tenant in the executor's environment: \
                             proposers running as this user may claim ANY tenant; set the tenant variable \
                             for the executor or list proposers with their tenants"
                                .to_owned(),
                        );
                        NameSet::Any
                    }
                };
                vec![(own_uid, tenants)]
            }
        };
        let approvers = match &cfg.airlock.approvers {
            Some(list) => list
                .iter()
                .map(|a| Ok((resolve(&a.peer)?, a.roles.clone())))
                .collect::<Result<_, PeerAuthError>>()?,
            None => vec![(own_uid, NameSet::Any)],
        };
        Ok(PeerPolicy {
            proposers,
            approvers,
            own_uid,
            warnings,
        })
    }

    /// May `uid` connect on the socket of `role`?
    pub fn may_connect(&self, role: Role, uid: u32) -> bool {
        match role {
            Role::Proposer => self.proposers.iter().any(|(u, _)| *u == uid),
            Role::Operator => self.approvers.iter().any(|(u, _)| *u == uid),
        }
    }

    /// May `uid` act (read, propose) for `tenant`?
    pub fn may_claim(&self, uid: u32, tenant: &str) -> bool {
        self.proposers
            .iter()
            .any(|(u, tenants)| *u == uid && tenants.contains(tenant))
    }

    /// Does `uid` hold `role` (or, for `None`, is it an approver at all)?
    pub fn may_approve(&self, uid: u32, role: Option<&str>) -> bool {
        self.approvers
            .iter()
            .any(|(u, roles)| *u == uid && role.is_none_or(|r| roles.contains(r)))
    }

    /// May `uid` prune the ledger? The executor's own OS user (which owns
    /// the ledger file anyway), or an approver whose roles name
    /// [`LEDGER_ADMIN_ROLE`] explicitly: a wildcard (`"roles": "*"`) does
    /// not count, because a prune moves records out of the ledger rather
    /// than deciding one proposal.
    pub fn may_prune(&self, uid: u32) -> bool {
        uid == self.own_uid
            || self.approvers.iter().any(|(u, roles)| {
                *u == uid
                    && matches!(roles, NameSet::Only(names) if names.iter().any(|n| n == LEDGER_ADMIN_ROLE))
            })
    }

    /// Whether any uid other than the executor's own may use `role`'s
    /// socket (then the socket must be group-accessible).
    pub fn others_allowed(&self, role: Role) -> bool {
        let list = match role {
            Role::Proposer => &self.proposers,
            Role::Operator => &self.approvers,
        };
        list.iter().any(|(u, _)| *u != self.own_uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_policy::load_config_str;

    const REFERENCE: &str = include_str!("../../tests/fixtures/reference/airlock.reference.json");

    #[test]
    fn laptop_defaults_bind_to_own_uid_and_env_tenant() {
        let cfg = load_config_str(REFERENCE).config.unwrap();
        let env = |k: &str| (k == "SYNAPSOR_TENANT_ID").then(|| "acme".to_owned());
        let p = PeerPolicy::from_config(&cfg, 1000, env, |_| None).unwrap();
        assert!(p.may_connect(Role::Proposer, 1000) && p.may_connect(Role::Operator, 1000));
        assert!(!p.may_connect(Role::Proposer, 1001) && !p.may_connect(Role::Operator, 0));
        assert!(p.may_claim(1000, "acme") && !p.may_claim(1000, "otherco"));
        assert!(p.may_approve(1000, Some("billing_lead")));
        assert!(p.warnings.is_empty());
        let open = PeerPolicy::from_config(&cfg, 1000, |_| None, |_| None).unwrap();
        assert!(open.may_claim(1000, "otherco"));
        assert_eq!(open.warnings.len(), 1);
    }

    #[test]
    fn configured_peers_and_roles() {
        let mut v: serde_json::Value = serde_json::from_str(REFERENCE).unwrap();
        v["airlock"] = serde_json::json!({
            "proposers": [{"user": "agent", "tenants": ["acme"]}],
            "approvers": [{"uid": 2000, "roles": ["billing_lead"]}]
        });
        let cfg = airlock_policy::load_config(&v).config.unwrap();
        let p =
            PeerPolicy::from_config(&cfg, 0, |_| None, |n| (n == "agent").then_some(1500)).unwrap();
        assert!(p.may_connect(Role::Proposer, 1500) && !p.may_connect(Role::Proposer, 0));
        assert!(
            p.may_approve(2000, Some("billing_lead")) && !p.may_approve(2000, Some("support_lead"))
        );
        assert!(p.others_allowed(Role::Operator));
        assert!(PeerPolicy::from_config(&cfg, 0, |_| None, |_| None).is_err());
    }

    #[test]
    fn only_the_executors_user_or_a_named_ledger_admin_may_prune() {
        let mut v: serde_json::Value = serde_json::from_str(REFERENCE).unwrap();
        v["airlock"] = serde_json::json!({
            "approvers": [
                {"uid": 2000, "roles": ["billing_lead", "ledger_admin"]},
                {"uid": 2001, "roles": "*"},
                {"uid": 2002, "roles": ["billing_lead"]}
            ]
        });
        let cfg = airlock_policy::load_config(&v).config.unwrap();
        let p = PeerPolicy::from_config(&cfg, 990, |_| None, |_| None).unwrap();
        assert!(p.may_prune(990), "the executor's own user");
        assert!(p.may_prune(2000), "a named ledger_admin");
        assert!(
            p.may_approve(2001, Some("ledger_admin")),
            "the wildcard holds the role for approvals…"
        );
        assert!(!p.may_prune(2001), "…but not for pruning");
        assert!(!p.may_prune(2002) && !p.may_prune(3000));
        // The laptop default: the executor's user is the approver.
        let cfg = airlock_policy::load_config_str(REFERENCE).config.unwrap();
        let p = PeerPolicy::from_config(&cfg, 1000, |_| None, |_| None).unwrap();
        assert!(p.may_prune(1000) && !p.may_prune(1001));
    }
}
