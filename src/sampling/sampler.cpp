// Placeholder so the layer library has a source; replaced by the real implementation.
