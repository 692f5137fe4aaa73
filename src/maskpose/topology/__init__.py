"""maskpose.topology"""
