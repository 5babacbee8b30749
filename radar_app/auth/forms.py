from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField
from wtforms.validators import DataRequired, Length, Regexp

# Deliberately loose: the account must already exist, so deliverability checks add nothing.
EMAIL_SHAPE = Regexp(r"^[^@\s]+@[^@\s]+$", message="Enter an email address like name@example.com")


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254), EMAIL_SHAPE])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])
    remember = BooleanField("Keep me signed in")
