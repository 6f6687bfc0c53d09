"""Demonstration data: rosbag2 (MCAP) bags, the recorder and its node, collection, datasets."""
