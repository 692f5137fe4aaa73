"""maskpose.data"""
