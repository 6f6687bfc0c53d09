"""Evaluation: one episode loop and result schema, in process and through ROS; the demo."""
