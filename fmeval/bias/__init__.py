"""Classic-ML bias metrics (pre- and post-training), Clarify-compatible, and the `fmeval analyze` job."""
