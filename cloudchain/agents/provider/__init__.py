"""`cloudchain provider run`: the daemon that sells this machine's compute (daemon.py)."""
