"""What a new installation starts with: the spec's example values (ops §1, §2, §6).

Migration 0005 seeds the database from here; afterwards the database is the truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_MODEL_CONFIG: dict[str, Any] = {
    "model": "gpt-5.1",
    "temperature": 0.4,
    "maxTokens": 4096,
    "toneProfile": "professional",
    "language": "auto",
    "enabled": True,
}

DEFAULT_LIMITS: dict[str, Any] = {
    "aiCallsPerMinute": 60,
    "fileUploadLimitMb": 200,
    "maxConcurrentSessions": 30,
}


@dataclass(frozen=True, slots=True)
class ToggleSeed:
    key: str
    enabled: bool
    description: str
    region_flippable: bool


# Region operators may flip the content-side toggles (quiz and content generation, which a
# region's content leads run); mission assignment and insights drive the whole pipeline and
# stay with admin (§8 Feature Toggle: Region "⚠️ 일부").
DEFAULT_TOGGLES = (
    ToggleSeed(
        "mission_auto_assign",
        True,
        "Mission Engine assigns missions automatically from UPM results.",
        region_flippable=False,
    ),
    ToggleSeed(
        "insight_generation",
        True,
        "Insights Engine generates insights from the daily snapshots.",
        region_flippable=False,
    ),
    ToggleSeed(
        "quiz_auto_generate",
        False,
        "Quiz Engine generates quizzes with the AI model.",
        region_flippable=True,
    ),
    ToggleSeed(
        "content_ai_transform",
        True,
        "Content Engine transforms learning content with the AI model.",
        region_flippable=True,
    ),
)
