from django.urls import path

from demo import views

urlpatterns = [
    path("", views.index, name="index"),
    path("health/", views.health, name="health"),
    path("sync/", views.sync_view, name="sync"),
    path("async/", views.async_view, name="async"),
    path("notes/", views.notes, name="notes"),
]
