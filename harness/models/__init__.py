"""Models and adapters: resolving and loading them, backends, the pool that keeps them."""
