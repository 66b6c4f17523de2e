"""billing: a small invoicing app (customers, invoices, payments) that embeds plugdock.

Its own accounts, sign-in, database and React UI; plugdock adds plugins to it in the few
marked lines of :mod:`billing.app`.
"""
