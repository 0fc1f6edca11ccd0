"""Geolocation of remote flow endpoints: special-address screening and IP databases."""
