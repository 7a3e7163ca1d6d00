"""Locust scenarios, the cell driver and the checkers that judge the recorded histories."""
