"""Pure building blocks: strict YAML, params and metrics parsing, the filter language,
comparison, rendering, run names, configuration, charts. No git, no DVC, no processes."""
