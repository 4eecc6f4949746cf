async def test_me_as_admin(gql, admin):
    body = await gql("{ me { sub role } }", as_=admin)
    assert body == {"data": {"me": {"sub": "admin-test", "role": "ADMIN"}}}
