"""Camera node core and adapter: multi-view sync, image conversion, fused point clouds."""
