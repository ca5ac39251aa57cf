"""The shared ML core (Django-free): base encoder, LoRA fine-tuning, artifacts and the inference runtime."""
