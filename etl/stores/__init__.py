"""The stores and their bytes: the keypoint store and the heatmap store (each owns its schema: create,
write, finalise, open, read), the clip table and its safe queries, sealing/publishing, the shard reader, verify."""
