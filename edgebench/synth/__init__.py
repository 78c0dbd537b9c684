"""Shape-faithful random-weight GGUF models, so a model's speed can be measured without its weights."""
