"""The layer under everything: the application's settings and its database engine.

Nothing here knows about papers, readers or emails; every other package may import it.
"""
