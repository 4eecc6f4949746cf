"""Table models, one module per domain. Importing this registers every table."""

from persistence.models.analytics import (
    AGGREGATE_MODELS,
    AggBranchRow,
    AggCountryRow,
    AggregateRow,
    AggRegionRow,
    AggTeamRow,
    SnapshotBuildRow,
    SnapshotDailyUserRow,
)
from persistence.models.audit import AuditEntryRow, AuditHeadRow
from persistence.models.directory import UserRow
from persistence.models.live import (
    LIVE_DAY,
    LIVE_PATH_DAY,
    LIVE_STATE,
    LIVE_USER_BADGE,
    LIVE_USER_DAY,
)
from persistence.models.logs import RAW_LOG_TABLES, EventLogRow, InteractionLogRow, SessionLogRow
from persistence.models.ops import (
    ActiveRulesetRow,
    EngineHeartbeatRow,
    FeatureToggleRow,
    OpsSettingRow,
    OpsStateRow,
    ReleaseRow,
    RulesetRow,
)

__all__ = [
    "AGGREGATE_MODELS",
    "LIVE_DAY",
    "LIVE_PATH_DAY",
    "LIVE_STATE",
    "LIVE_USER_BADGE",
    "LIVE_USER_DAY",
    "RAW_LOG_TABLES",
    "ActiveRulesetRow",
    "AggBranchRow",
    "AggCountryRow",
    "AggRegionRow",
    "AggTeamRow",
    "AggregateRow",
    "AuditEntryRow",
    "AuditHeadRow",
    "EngineHeartbeatRow",
    "EventLogRow",
    "FeatureToggleRow",
    "InteractionLogRow",
    "OpsSettingRow",
    "OpsStateRow",
    "ReleaseRow",
    "RulesetRow",
    "SessionLogRow",
    "SnapshotBuildRow",
    "SnapshotDailyUserRow",
    "UserRow",
]
