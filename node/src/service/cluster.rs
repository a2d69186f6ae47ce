//! The cluster's own replicated settings: the quotas.

use fleetcore_model::limits::Quotas;
use fleetcore_model::ClusterCommand;
use fleetcore_raft::Connector;

use super::{Service, ServiceResult};

impl<C: Connector> Service<C> {
    /// The quotas in force, linearizable.
    pub async fn quotas(&self) -> ServiceResult<Quotas> {
        self.read(|s| s.quotas()).await
    }

    /// Replaces the quotas (checked before they are proposed, and again in `apply`).
    pub async fn set_quotas(&self, quotas: Quotas) -> ServiceResult<Quotas> {
        quotas.check()?;
        self.propose(ClusterCommand::SetQuotas(quotas)).await?;
        Ok(quotas)
    }
}
