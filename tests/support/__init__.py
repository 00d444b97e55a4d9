"""Everything the tests share, and the benchmarks borrow: fixtures' building blocks, fake
servers, sample data and small helpers. Test modules import from here, never from each other
(tests/test_architecture.py checks it), so each test_*.py file stays a leaf.
"""
