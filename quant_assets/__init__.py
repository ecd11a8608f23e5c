"""quant-assets: a point-in-time research-to-production pipeline for systematic equity ML."""
