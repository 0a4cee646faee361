"""The analyses behind the notebooks, one module each: feature stability and what the features encode
(notebook 05, `stability`), embeddings and silhouettes (06, `embeddings`), the baselines table, λ selection
and protocols (07, `baselines`) and the mini-batch study of CCA-style objectives against Soft-HGR (07,
`minibatch`), and whether training levelled off (02, `convergence`). Their figures are in hgrlib.report.plots."""
