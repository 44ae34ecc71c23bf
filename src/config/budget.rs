//! `[connection_budget.*]`: the anti-ban connection-attempt budget (CONTRACT §6).
//! Defaults are [`BudgetSpec::default`]'s (10 attempts per organization per day,
//! 1,000 per hour in all; see there for why).

use serde::{Deserialize, Serialize};
use wa_actors::{BudgetSpec, SupervisorConfig, WindowSpec};

use super::range::{Number, Range};
use super::windows::{LIMIT, PERIOD_SECONDS, Window, WindowKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerOrg;
impl WindowKind for PerOrg {
    const TABLE: &'static str = "connection_budget.per_org";
    const LIMIT: Range = LIMIT;
    const SECONDS: Range = PERIOD_SECONDS;
    fn default_spec() -> WindowSpec {
        BudgetSpec::default().per_org
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Global;
impl WindowKind for Global {
    const TABLE: &'static str = "connection_budget.global";
    const LIMIT: Range = LIMIT;
    const SECONDS: Range = PERIOD_SECONDS;
    fn default_spec() -> WindowSpec {
        BudgetSpec::default().global
    }
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetConfig {
    pub per_org: Window<PerOrg>,
    pub global: Window<Global>,
}

impl BudgetConfig {
    pub fn numbers(&self) -> Vec<Number> {
        [self.per_org.numbers(), self.global.numbers()].concat()
    }

    pub fn spec(&self) -> BudgetSpec {
        BudgetSpec {
            per_org: self.per_org.spec(),
            global: self.global.spec(),
        }
    }

    /// Sets what these tables configure of the actor tree.
    pub fn apply(&self, actors: &mut SupervisorConfig) {
        actors.budget = self.spec();
    }
}
