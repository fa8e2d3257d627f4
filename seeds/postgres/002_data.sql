-- Fixed timestamps: seeded data is the same in every namespace, however it was seeded.
insert into customers (email, name, created_at) values
    ('ada@example.com', 'Ada Lovelace', '2026-01-05 09:00:00+00'),
    ('alan@example.com', 'Alan Turing', '2026-02-11 14:30:00+00'),
    ('grace@example.com', 'Grace Hopper', '2026-03-20 08:15:00+00');

copy products (sku, title, price_cents) from stdin;
BOOK-1	The Art of Computer Programming	19900
LAMP-2	Desk lamp	3450
TEA-3	Earl Grey, 250 g	899
\.

insert into orders (customer_id, status, placed_at) values
    (1, 'paid', '2026-04-01 10:00:00+00'),
    (2, 'placed', '2026-04-02 11:00:00+00'),
    (3, 'shipped', '2026-04-03 12:00:00+00');
insert into order_lines (order_id, sku, quantity) values
    (1, 'BOOK-1', 1), (1, 'TEA-3', 2),
    (2, 'LAMP-2', 1),
    (3, 'TEA-3', 5);
