import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hub"))

from fake_hub import fake_hub_server, hub  # noqa: E402,F401 (pytest fixtures)
