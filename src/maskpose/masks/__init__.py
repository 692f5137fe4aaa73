"""maskpose.masks"""
