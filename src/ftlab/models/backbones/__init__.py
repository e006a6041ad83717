"""Pretrained feature extractors. Each returns a `Backbone`: features of size `out_features`."""
