"""User Performance Monitor (upm-api-v2): logging results, the aggregated profile, skill mastery.

``service`` holds what resolvers call; ``planning`` validates a log and decides its writes,
``recording`` writes it through the group-commit writer, ``profile`` reads the maintained
profile, ``rules`` holds the formulas, driven by the active UPM ruleset (``ruleset``) that
``hotReload(type: upm)`` switches.
"""
