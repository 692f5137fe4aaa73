"""maskpose.body"""
