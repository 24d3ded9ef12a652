"""Input: one image on the host (images), data sources read by index (sources), and the
pipeline that turns them into global batches on the devices (pipeline)."""
