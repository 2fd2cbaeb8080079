"""The faust stream processors of creative-sync: one folder per processor (logic.py pure, agent.py wiring)."""
