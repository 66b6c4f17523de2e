"""A plugin's SQL on SQLite, PostgreSQL and MariaDB: checking and running migrations, upgrade
steps, undoing MariaDB's self-committing DDL, and the per-plugin database role.
"""
