"""System operations (ops-api-v2): the settings engines obey, rulesets, releases and health.

Modules: ``catalog`` (names and allowed values), ``policy`` (the §8 scope matrix),
``state`` (the per-process cache every worker refreshes from ``ops_state.version``),
``config``, ``features``, ``limits`` (and ``enforcement``, its per-worker counters), ``rulesets``,
``releases``, ``health``, ``diagnostics``.
"""
