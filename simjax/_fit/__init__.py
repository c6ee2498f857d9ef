"""Training loops: `simjax.fit` and `simjax.train_sequence`."""
