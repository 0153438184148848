#!/usr/bin/env python3
"""A browser's view of a Django site through nginx on this host (HTTPS on 127.0.0.1:443).

    django_client.py --name shop.test [--source 127.0.0.2] get PATH
    django_client.py --name shop.test [--source 127.0.0.2] login --admin /admin/ --user U --password P

The TLS handshake carries the site name (SNI) and the Host header; --source picks the client
address nginx sees (any 127.0.0.0/8 address works on loopback). `login` does what a browser
does: GET the login page (CSRF cookie and form token), POST the form with Origin/Referer,
follow to the admin index with the session cookie, then asks /whoami/ what REMOTE_ADDR the
app saw. Prints one JSON object. Bounded: a handful of requests, 15 s timeout each.
"""
import argparse
import http.client
import json
import re
import socket
import ssl
from http.cookies import SimpleCookie
from urllib.parse import urlencode


class Site:
    def __init__(self, name, source, timeout=15):
        self.name, self.source, self.timeout = name, source, timeout
        self.cookies = {}
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE

    def request(self, method, path, body=None, headers=None):
        sock = socket.create_connection(("127.0.0.1", 443), self.timeout,
                                        (self.source, 0) if self.source else None)
        conn = http.client.HTTPSConnection(self.name, 443, timeout=self.timeout, context=self.context)
        conn.sock = self.context.wrap_socket(sock, server_hostname=self.name)
        all_headers = {"Host": self.name, "User-Agent": "pydeploy-tests"}
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        all_headers.update(headers or {})
        conn.request(method, path, body=body, headers=all_headers)
        response = conn.getresponse()
        text = response.read().decode("utf-8", "replace")
        for header in response.headers.get_all("Set-Cookie") or []:
            cookie = SimpleCookie()
            cookie.load(header)
            for key, morsel in cookie.items():
                self.cookies[key] = morsel.value
        conn.close()
        return response.status, dict(response.headers), text


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--source", default="")
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("get")
    get.add_argument("path")
    login = sub.add_parser("login")
    login.add_argument("--admin", default="/admin/")
    login.add_argument("--user", required=True)
    login.add_argument("--password", required=True)
    args = parser.parse_args()
    site = Site(args.name, args.source)
    if args.command == "get":
        status, headers, body = site.request("GET", args.path)
        print(json.dumps({"status": status, "headers": headers, "body": body}))
        return
    report = {}
    login_path = args.admin + "login/"
    status, _, page = site.request("GET", f"{login_path}?next={args.admin}")
    report["login_page"] = status
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    report["csrf_cookie"] = "csrftoken" in site.cookies
    form = urlencode({"csrfmiddlewaretoken": token.group(1) if token else "", "username": args.user,
                      "password": args.password, "next": args.admin})
    status, headers, body = site.request("POST", f"{login_path}?next={args.admin}", body=form, headers={
        "Content-Type": "application/x-www-form-urlencoded", "Origin": f"https://{args.name}",
        "Referer": f"https://{args.name}{login_path}"})
    report.update(post=status, location=headers.get("Location", ""), session="sessionid" in site.cookies,
                  post_body=body[:300] if status != 302 else "")
    status, _, body = site.request("GET", args.admin)
    report.update(index=status, site_administration="Site administration" in body)
    status, _, body = site.request("GET", "/whoami/")
    report["whoami"] = json.loads(body) if status == 200 else {"status": status}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
