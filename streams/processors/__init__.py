"""Thin stream processors: glue between Kafka records and the core."""
