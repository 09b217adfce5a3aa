"""The head registry: name → where its class lives. Kept apart from `heads.base` and free of
imports, so that the command line can list the heads in its help without loading scikit-learn
or torch; `heads.base.head_class` imports a head on demand."""

HEADS: dict[str, str] = {
    "transformer": "harmcache.heads.transformer:TransformerHead",
    "lightgbm": "harmcache.heads.gbm:LightGBMHead",
    "logreg": "harmcache.heads.logreg:LogRegHead",
    "mil": "harmcache.heads.mil:MILHead",
    "prompts": "harmcache.heads.prompts:PromptHead",
}
"""name → "module:Class"; imported on demand so that LightGBM runs never import torch."""
