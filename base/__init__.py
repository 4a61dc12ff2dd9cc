"""edgezoo.base: what every layer shares (errors, atomic output sets, files, provenance); imports no layer."""
