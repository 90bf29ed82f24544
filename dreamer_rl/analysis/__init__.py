"""After training: runs and metric histories read from MLflow, binned learning curves, published baselines, plots
and score files (``python -m recipes.plot``, ``python -m recipes.scores``)."""
