"""maskpose.train"""
