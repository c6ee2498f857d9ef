"""The command-line application: configs, experiments, sweeps, reports (`simjax run|sweep|report|bench|list`)."""
