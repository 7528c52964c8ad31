"""The closed loop shown end to end: seeded traffic, feedback, and the demo scenario."""
