"""Dataset loaders: the official on-disk layouts, and the Hugging Face hub when online."""
