from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField
from wtforms.validators import DataRequired, Length, Regexp

# Deliberately loose: the account must already exist, so deliverability checks add nothing.
# Control characters are excluded too: PostgreSQL cannot even compare a text with a NUL.
EMAIL_SHAPE = Regexp(
    r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+$",
    message="Enter an email address like name@example.com",
)


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254), EMAIL_SHAPE])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])
    remember = BooleanField("Keep me signed in")
