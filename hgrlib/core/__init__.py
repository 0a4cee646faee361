"""The paper's method: the networks f, g, h (`models`), Soft-HGR and the joint loss (`losses`), metrics
(`metrics`), and training (`train`: train_one_epoch, evaluate, fit) with what it needs (runtime, checkpoints,
the result type, stacks of runs, CUDA graphs, several processes)."""
