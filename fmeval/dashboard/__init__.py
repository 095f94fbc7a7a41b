"""The dashboard: a multi-user web app over the store (models, runs, monitors, model cards)."""
