"""Metadata stage: frames, events, counterparts and volume (DataFrame in, DataFrame out)."""
