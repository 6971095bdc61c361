"""Policies and the DQN agent."""
