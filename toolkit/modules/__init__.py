"""Neural building blocks shared by backbones."""
