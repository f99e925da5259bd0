"""LoRA fine-tuning: one loop for the normal and the liminal trainer."""
