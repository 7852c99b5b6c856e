"""Explicit marshmallow schemas: <Thing>Create, <Thing>Update, <Thing>Out, <Thing>Query."""
